"""The local tax system's export and the payment gateway's payments -> records. Pure.

The export (as Romanian local tax systems write it): CSV with ";" between fields, a decimal
comma ("1.234,56" or "1234,56"), dates as dd.mm.yyyy, UTF-8.

    contribuabili.csv  rol_fiscal;tip;cod_fiscal;denumire
                       tip: PF (natural person), PFA / II (sole traders), PJ (legal person)
    debite.csv         id_debit;rol_fiscal;categorie;an_fiscal;data_emitere;temei_legal;
                       bun_impozabil;suma_datorata;majorari;bonificatie;achitat;
                       rata1_scadenta;rata1_suma;rata2_scadenta;rata2_suma;stare

The gateway (ghiseul.ro style) answers JSON: amounts as strings with a decimal point, times in
RFC 3339, the payer's CNP or CUI, and the obligations (debits) each payment settles.

Sums of money are Decimal, never float, and must be lei with at most 2 decimals, and not
negative: anything else is a BadRecord (a dead letter), never a rounded guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from adapters.sdk.errors import BadRecord
from adapters.tax.identifiers import InvalidIdentifier, TaxId, parse_tax_id

LOCAL_TIME = ZoneInfo("Europe/Bucharest")
CENTS = Decimal("0.01")
TAXPAYER_KINDS = {"PF": "naturalPerson", "PFA": "soleTrader", "II": "soleTrader",
                  "IF": "soleTrader", "PJ": "legalPerson"}
CATEGORIES = {"IMPOZIT_CLADIRI": "buildingTax", "IMPOZIT_TEREN": "landTax",
              "IMPOZIT_MIJLOACE_TRANSPORT": "vehicleTax", "TAXA_RECLAMA": "advertisingTax",
              "TAXA_HOTELIERA": "hotelTax", "TAXA_LOCALA": "localFee", "AMENDA": "fine",
              "MAJORARI": "accessory", "ALTELE": "other"}
STATUSES = {"NEACHITAT": "unpaid", "PARTIAL": "partiallyPaid", "ACHITAT": "paid",
            "RESTANT": "overdue", "ANULAT": "cancelled", "EXECUTARE": "inEnforcement"}
PAYMENT_METHODS = {"card": "card", "cash": "cash", "transfer": "bankTransfer",
                   "mandat": "postalOrder"}
PAYMENT_STATUSES = {"PENDING": "pending", "SETTLED": "settled", "REVERSED": "reversed",
                    "REFUNDED": "refunded"}


@dataclass(frozen=True)
class TaxpayerRow:
    rol: str  # rol fiscal: the taxpayer's record number in the local system
    taxpayer_type: str
    tax_id: TaxId
    name: str | None  # the denomination (published for legal persons only)


@dataclass(frozen=True)
class ObligationRow:
    debit: str
    rol: str
    category: str
    fiscal_year: int
    issued: date | None
    legal_basis: str | None
    asset: str | None  # cadastral number or plate: a direct identifier, never published
    due: Decimal
    late: Decimal
    discount: Decimal
    paid: Decimal
    installments: tuple[tuple[date, Decimal], ...]
    status: str


@dataclass(frozen=True)
class PaymentItem:
    debit: str
    amount: Decimal


@dataclass(frozen=True)
class Payment:
    seq: int
    transaction: str
    paid_at: datetime
    amount: Decimal
    payer: TaxId
    method: str | None
    status: str
    receipt: str | None
    items: tuple[PaymentItem, ...]


def _lei(number: Decimal, what: str) -> Decimal:
    if not number.is_finite():
        raise BadRecord(f"{what}: not a number")
    if number < 0:
        raise BadRecord(f"{what}: negative amount")
    if number != number.quantize(CENTS):
        raise BadRecord(f"{what}: more than 2 decimals (lei and bani)")
    return number.quantize(CENTS)


def lei_ro(text: str | None, what: str) -> Decimal:
    """A sum written the Romanian way ("1.234,56", "1234,56", "1234"); "" is 0."""
    cleaned = (text or "").strip().replace(" ", "")
    if not cleaned:
        return Decimal("0.00")
    if "," in cleaned:
        cleaned = cleaned.replace(".", "").replace(",", ".")
    elif cleaned.count(".") == 1 and len(cleaned.split(".")[1]) == 3:
        cleaned = cleaned.replace(".", "")  # "1.234": a thousands separator
    try:
        return _lei(Decimal(cleaned), what)
    except InvalidOperation:
        raise BadRecord(f"{what}: not a sum of money") from None


def lei(value: Any, what: str) -> Decimal:
    """A sum from the gateway's JSON: a string or a number, with a decimal point."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRecord(f"{what}: not a sum of money")
    try:
        return _lei(Decimal(str(value)), what)
    except InvalidOperation:
        raise BadRecord(f"{what}: not a sum of money") from None


def date_ro(text: str | None, what: str) -> date | None:
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    try:
        return datetime.strptime(cleaned, "%d.%m.%Y").date()
    except ValueError:
        raise BadRecord(f"{what}: {cleaned!r} is not a date (dd.mm.yyyy)") from None


def _field(row: Mapping[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"{where}: missing {name}")
    return value.strip()


def _tax_id(text: str, where: str) -> TaxId:
    try:
        return parse_tax_id(text)
    except InvalidIdentifier as bad:
        raise BadRecord(f"{where}: {bad}") from None  # the reason never quotes the number


def parse_taxpayer(row: Mapping[str, Any]) -> TaxpayerRow:
    """One line of contribuabili.csv."""
    rol = _field(row, "rol_fiscal", "taxpayer")
    where = f"taxpayer {rol}"
    kind = TAXPAYER_KINDS.get(_field(row, "tip", where).upper())
    if kind is None:
        raise BadRecord(f"{where}: tip is not one of {', '.join(TAXPAYER_KINDS)}")
    tax_id = _tax_id(_field(row, "cod_fiscal", where), where)
    if kind == "naturalPerson" and tax_id.kind != "CNP":
        raise BadRecord(f"{where}: a natural person (PF) is identified by a CNP")
    if kind == "legalPerson" and tax_id.kind != "CUI":
        raise BadRecord(f"{where}: a legal person (PJ) is identified by a CUI")
    name = (row.get("denumire") or "").strip() or None
    return TaxpayerRow(rol, kind, tax_id, name)


def parse_obligation(row: Mapping[str, Any]) -> ObligationRow:
    """One line of debite.csv."""
    debit = _field(row, "id_debit", "obligation")
    where = f"obligation {debit}"
    category = CATEGORIES.get(_field(row, "categorie", where).upper())
    if category is None:
        raise BadRecord(f"{where}: categorie is not one of {', '.join(CATEGORIES)}")
    status = STATUSES.get(_field(row, "stare", where).upper())
    if status is None:
        raise BadRecord(f"{where}: stare is not one of {', '.join(STATUSES)}")
    try:
        year = int(_field(row, "an_fiscal", where))
    except ValueError:
        raise BadRecord(f"{where}: an_fiscal is not a year") from None
    if not 1990 <= year <= 2100:
        raise BadRecord(f"{where}: an_fiscal {year} is outside 1990-2100")
    installments = []
    for n in (1, 2):
        due_date = date_ro(row.get(f"rata{n}_scadenta"), f"{where}: rata{n}_scadenta")
        if due_date is not None:
            installments.append((due_date, lei_ro(row.get(f"rata{n}_suma"),
                                                  f"{where}: rata{n}_suma")))
    return ObligationRow(
        debit=debit, rol=_field(row, "rol_fiscal", where), category=category, fiscal_year=year,
        issued=date_ro(row.get("data_emitere"), f"{where}: data_emitere"),
        legal_basis=(row.get("temei_legal") or "").strip() or None,
        asset=(row.get("bun_impozabil") or "").strip() or None,
        due=lei_ro(row.get("suma_datorata"), f"{where}: suma_datorata"),
        late=lei_ro(row.get("majorari"), f"{where}: majorari"),
        discount=lei_ro(row.get("bonificatie"), f"{where}: bonificatie"),
        paid=lei_ro(row.get("achitat"), f"{where}: achitat"),
        installments=tuple(installments), status=status)


def parse_payment(doc: Any) -> Payment:
    """One payment of the gateway's answer."""
    if not isinstance(doc, dict):
        raise BadRecord("payment: not a JSON object")
    txn = doc.get("transactionId")
    if not isinstance(txn, str) or not txn:
        raise BadRecord("payment: no transactionId")
    where = f"payment {txn}"
    if doc.get("currency") != "RON":
        raise BadRecord(f"{where}: currency is not RON (local budgets are kept in lei)")
    try:
        paid_at = datetime.fromisoformat(str(doc.get("paidAt")))
    except ValueError:
        raise BadRecord(f"{where}: paidAt is not an ISO 8601 time") from None
    if paid_at.tzinfo is None:
        paid_at = paid_at.replace(tzinfo=LOCAL_TIME)
    amount = lei(doc.get("amount"), f"{where}: amount")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise BadRecord(f"{where}: no items (the obligations it settles)")
    items = []
    for item in raw_items:
        if not isinstance(item, dict) or not isinstance(item.get("debitId"), str):
            raise BadRecord(f"{where}: an item without debitId")
        items.append(PaymentItem(item["debitId"], lei(item.get("amount"),
                                                      f"{where}: item amount")))
    if sum((i.amount for i in items), Decimal(0)) != amount:
        raise BadRecord(f"{where}: the items do not add up to the amount")
    status = PAYMENT_STATUSES.get(str(doc.get("status", "")).upper())
    if status is None:
        raise BadRecord(f"{where}: status is not one of {', '.join(PAYMENT_STATUSES)}")
    payer = doc.get("payerId")
    if not isinstance(payer, str):
        raise BadRecord(f"{where}: no payerId")
    seq = doc.get("seq")
    return Payment(seq=seq if isinstance(seq, int) else 0, transaction=txn, paid_at=paid_at,
                   amount=amount, payer=_tax_id(payer, f"{where}: payerId"),
                   method=PAYMENT_METHODS.get(str(doc.get("method", ""))), status=status,
                   receipt=doc.get("receipt") if isinstance(doc.get("receipt"), str) else None,
                   items=tuple(items))
