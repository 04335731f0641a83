"""JSON-LD @context handling: the built-in core context, compiled term maps, the outbound address
policy, the remote context fetcher and the resolver that ties them together.

    terms = await resolver.term_map(request_context)   # ContextResolver, cached per process
    terms.expand("temperature")  # -> "https://uri.etsi.org/ngsi-ld/default-context/temperature"
    terms.compact(iri)           # -> the shortest name for an IRI
"""

from broker.ld.core import CORE_CONTEXT_URL, DEFAULT_VOCAB, is_core_context_url
from broker.ld.fetch import fetch_json
from broker.ld.netpolicy import AddressPolicy, parse_networks
from broker.ld.resolver import ContextResolver, ContextStore
from broker.ld.termmap import CORE_TERMS, TermMap, compile_context

__all__ = [
    "CORE_CONTEXT_URL",
    "CORE_TERMS",
    "DEFAULT_VOCAB",
    "AddressPolicy",
    "ContextResolver",
    "ContextStore",
    "TermMap",
    "compile_context",
    "fetch_json",
    "is_core_context_url",
    "parse_networks",
]
