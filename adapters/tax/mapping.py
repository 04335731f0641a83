"""Tax records -> Taxpayer, TaxObligation and TaxPayment entities (Cetate's context). Pure.

Identifiers only as keyed hashes (`pseudonymise`, the SDK's HMAC): a taxpayer's id and
`taxIdentifierHash` come from its CNP or CUI, a taxed vehicle's or building's reference from
its plate or cadastral number. A natural person's name is not published at all (the broker
needs none); a company's denomination is public and is. The amounts go only in attributes the
contracts classify as personal (amountDue, amountPaid, amountCollected...), which the policy
layer masks for whoever may not see them: the early-payment discount, classified "none" but a
fixed share of the amount due, is not published.

References are checked against the `Ledger`, the export's taxpayers and obligations: an
obligation of an unknown taxpayer, or a payment of an unknown obligation, is a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from adapters.sdk.errors import BadRecord
from adapters.sdk.hooks import Entity, Pseudonymise
from adapters.tax.identifiers import TaxId
from adapters.tax.parse import (
    LOCAL_TIME,
    ObligationRow,
    Payment,
    TaxpayerRow,
    parse_obligation,
    parse_taxpayer,
)
from broker.validation import contracts
from models.domain import to_normalized

CURRENCY = "RON"
# The pseudonymiser's kind per identifier, and the entity type a taxed asset would have.
ID_KINDS = {"CNP": "cnp", "CUI": "cui"}
ASSETS = {"buildingTax": ("cadastre", "Building"), "landTax": ("cadastre", "LandParcel"),
          "vehicleTax": ("plate", "Vehicle")}


def entity(type_name: str, key_values: Mapping[str, Any]) -> Entity:
    """The normalized entity (None values left out) with its type's @context."""
    contract = contracts().named(type_name)
    doc = {"type": type_name, **{k: v for k, v in key_values.items() if v is not None}}
    return {**to_normalized(doc, contract), "@context": [contract.context]}


def money(amount: Decimal) -> float:
    # Exact: Decimal quantized to bani, so the float is the nearest to a 2-decimal number.
    return float(amount)


@dataclass(frozen=True)
class Ledger:
    """The export as the references are checked against it."""

    place: str = "craiova"  # in obligation and payment ids
    authority: str = "urn:ngsi-ld:Organization:craiova-dgitl"  # the local tax office
    taxpayers: Mapping[str, TaxId] = field(default_factory=dict)  # rol fiscal -> CNP/CUI
    obligations: Mapping[str, str] = field(default_factory=dict)  # debit -> rol fiscal
    refused: frozenset[str] = frozenset()  # debits whose line is itself a dead letter


def ledger_of(taxpayer_rows: Iterable[Mapping[str, Any]],
              obligation_rows: Iterable[Mapping[str, Any]], *, place: str = "craiova",
              authority: str = Ledger.authority) -> Ledger:
    """The Ledger of the export's raw CSV rows (unreadable ones left out)."""
    taxpayers: dict[str, TaxId] = {}
    for row in taxpayer_rows:
        try:
            taxpayer = parse_taxpayer(row)
        except BadRecord:
            continue
        taxpayers[taxpayer.rol] = taxpayer.tax_id
    obligations: dict[str, str] = {}
    refused: set[str] = set()
    for row in obligation_rows:
        try:
            obligation = parse_obligation(row)
            _outstanding(obligation)
        except BadRecord:
            debit = row.get("id_debit") if isinstance(row, Mapping) else None
            if isinstance(debit, str):
                refused.add(debit.strip())
            continue
        if obligation.rol in taxpayers:
            obligations[obligation.debit] = obligation.rol
        else:
            refused.add(obligation.debit)
    return Ledger(place, authority, taxpayers, obligations, frozenset(refused - set(obligations)))


def taxpayer_id(tax_id: TaxId, pseudonymise: Pseudonymise) -> tuple[str, str]:
    """(entity id, keyed hash): the id is built from the hash, never from the number."""
    hashed = pseudonymise(ID_KINDS[tax_id.kind], tax_id.value)
    return f"urn:ngsi-ld:Taxpayer:{hashed}", hashed


def _urn(type_name: str, ledger: Ledger, local: str) -> str:
    return f"urn:ngsi-ld:{type_name}:{ledger.place}:{quote(local, safe='-._~')}"


def map_taxpayer(row: TaxpayerRow, ledger: Ledger, pseudonymise: Pseudonymise) -> Entity:
    entity_id, hashed = taxpayer_id(row.tax_id, pseudonymise)
    return entity("Taxpayer", {
        "id": entity_id, "taxpayerType": row.taxpayer_type,
        "taxIdentifierType": row.tax_id.kind, "taxIdentifierHash": hashed,
        "fiscalRecordNumber": row.rol,
        "name": row.name if row.taxpayer_type == "legalPerson" else None,
        "hasCompetentAuthority": ledger.authority})


def _outstanding(row: ObligationRow) -> Decimal:
    owed = row.due + row.late
    if row.paid > owed:
        raise BadRecord(f"obligation {row.debit}: achitat is more than the amount owed "
                        f"(overpayments are credits, not part of a debit)")
    return owed - row.paid


def _asset(row: ObligationRow, pseudonymise: Pseudonymise) -> str | None:
    found = ASSETS.get(row.category)
    if found is None or row.asset is None:
        return None
    kind, type_name = found
    canonical = "".join(row.asset.upper().split()).replace("-", "")
    return f"urn:ngsi-ld:{type_name}:{pseudonymise(kind, canonical)}"


def _midnight(day: Any) -> str:
    return datetime.combine(day, time(0), LOCAL_TIME).isoformat()


def map_obligation(row: ObligationRow, ledger: Ledger, pseudonymise: Pseudonymise) -> Entity:
    tax_id = ledger.taxpayers.get(row.rol)
    if tax_id is None:
        raise BadRecord(f"obligation {row.debit}: unknown taxpayer (rol fiscal not in the "
                        f"export's contribuabili.csv, or refused there)")
    outstanding = _outstanding(row)
    return entity("TaxObligation", {
        "id": _urn("TaxObligation", ledger, row.debit),
        "refTaxpayer": taxpayer_id(tax_id, pseudonymise)[0],
        "obligationCategory": row.category, "fiscalYear": row.fiscal_year,
        "legalBasis": row.legal_basis,
        "dateIssued": _midnight(row.issued) if row.issued else None,
        "refTaxableAsset": _asset(row, pseudonymise),
        "installments": [{"dueDate": d.isoformat(), "amount": money(a)}
                         for d, a in row.installments] or None,
        "amountDue": money(row.due),
        # earlyPaymentDiscount is left out: the contract classifies it "none", yet the
        # bonificaţie is a fixed share of amountDue (10% in Craiova), so it would tell it.
        "latePaymentAmount": money(row.late) if row.late else None,
        "amountPaid": money(row.paid), "amountOutstanding": money(outstanding),
        "priceCurrency": CURRENCY, "paymentStatus": row.status,
        "hasCompetentAuthority": ledger.authority})


def map_payment(payment: Payment, ledger: Ledger, pseudonymise: Pseudonymise) -> Entity:
    """A gateway payment -> TaxPayment, whose refTaxpayer is the obligations' taxpayer (one
    may pay another's taxes: the payer's own identifier is checked, not published)."""
    where = f"payment {payment.transaction}"
    owners = set()
    for item in payment.items:
        if item.debit in ledger.refused:
            raise BadRecord(f"{where}: obligation {item.debit} was refused (see its own dead "
                            f"letter)")
        rol = ledger.obligations.get(item.debit)
        if rol is None:
            raise BadRecord(f"{where}: unknown obligation {item.debit} (not in the export)")
        owners.add(rol)
    if len(owners) != 1:
        raise BadRecord(f"{where}: settles obligations of {len(owners)} taxpayers; a payment "
                        f"is of one")
    owner = ledger.taxpayers[owners.pop()]
    return entity("TaxPayment", {
        "id": _urn("TaxPayment", ledger, payment.transaction),
        "refTaxpayer": taxpayer_id(owner, pseudonymise)[0],
        "refTaxObligation": [_urn("TaxObligation", ledger, i.debit) for i in payment.items],
        "amountCollected": money(payment.amount), "priceCurrency": CURRENCY,
        "datePaid": payment.paid_at.isoformat(), "paymentMethod": payment.method,
        "paymentChannel": "onlineGateway", "receiptNumber": payment.receipt,
        "transactionReference": payment.transaction, "status": payment.status})
