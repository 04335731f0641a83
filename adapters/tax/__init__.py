"""Local taxes: a local tax system's export (taxpayers, obligations) and an online payment
gateway's payments (ghiseul.ro style).

parse.py: vendor bytes -> records (CNP/CUI checked); mapping.py: records -> Taxpayer,
TaxObligation, TaxPayment; simulator.py: the export files and the gateway over HTTP;
adapter.py: the SDK Adapter.
"""
