"""The NGSI-LD error hierarchy (ETSI GS CIM 009 clause 5.5.2 and table 5.5.2-1).

Every error the broker raises is one of these; the HTTP edge turns it into a ProblemDetails body
(RFC 7807) with the error type URI and the status code of the table. Handlers and the pure core
raise them; nothing else turns into an HTTP error.
"""

from __future__ import annotations

from typing import Any

ERROR_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class NgsiError(Exception):
    """Base of every NGSI-LD error: a problem type, a status and a human-readable detail."""

    # Plain class attributes, so that HttpError can set them per instance.
    type_name: str = "InternalError"
    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return ERROR_BASE + self.type_name

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The ProblemDetails body for this error."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body



CETATE_ERROR_BASE = "https://cetate.city/errors/"


class CetateError(NgsiError):
    """An error NGSI-LD defines no type for (credentials, authorisation): Cetate's own URI."""

    @property
    def type_uri(self) -> str:
        return CETATE_ERROR_BASE + self.type_name


class InvalidRequest(NgsiError):
    type_name = "InvalidRequest"
    status = 400
    title = "The request associated to the operation is syntactically invalid"


class BadRequestData(NgsiError):
    type_name = "BadRequestData"
    status = 400
    title = "The request includes input data which does not meet the requirements of the operation"


class AlreadyExists(NgsiError):
    type_name = "AlreadyExists"
    status = 409
    title = "The referred element already exists"


class OperationNotSupported(NgsiError):
    type_name = "OperationNotSupported"
    status = 422
    title = "The operation is not supported"


class ResourceNotFound(NgsiError):
    type_name = "ResourceNotFound"
    status = 404
    title = "The referred resource has not been found"


class InternalError(NgsiError):
    type_name = "InternalError"
    status = 500
    title = "There has been an error during the operation execution"


class TooManyResults(NgsiError):
    type_name = "TooManyResults"
    status = 403
    title = "The query result exceeds the maximum number of entities that can be returned"


class TooComplexQuery(NgsiError):
    type_name = "TooComplexQuery"
    status = 403
    title = "The query is too complex to be processed"


class LdContextNotAvailable(NgsiError):
    type_name = "LdContextNotAvailable"
    status = 503
    title = "A remote JSON-LD @context referenced in a request cannot be retrieved"


class NonexistentTenant(NgsiError):
    type_name = "NonexistentTenant"
    status = 404
    title = "The addressed tenant does not exist"


class NoMultiTenantSupport(NgsiError):
    type_name = "NoMultiTenantSupport"
    status = 501
    title = "The broker does not support multiple tenants"


class HttpError(NgsiError):
    """A plain HTTP-level error (405, 406, 411, 413, 415) with no NGSI-LD error type of its own.

    The specification maps these onto the generic problem types; the status is the HTTP one.
    """

    def __init__(self, status: int, detail: str, type_name: str = "InvalidRequest") -> None:
        super().__init__(detail)
        self.status = status
        self.type_name = type_name
        self.title = _HTTP_TITLES.get(status, "HTTP error")


_HTTP_TITLES = {
    405: "Method not allowed",
    406: "Not acceptable",
    411: "Length required",
    413: "Request entity too large",
    415: "Unsupported media type",
}
