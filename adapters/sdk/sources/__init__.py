"""Where raw records come from. Each yields `Raw(stream, position, data, error)`; pick one in
`Adapter.source(config)`, or combine several with `merged(...)`."""

from adapters.sdk.sources.base import BaseSource, Merged, merged
from adapters.sdk.sources.files import Files
from adapters.sdk.sources.http_poll import HttpPolling
from adapters.sdk.sources.mqtt import MqttTopic
from adapters.sdk.sources.webhook import Webhook

__all__ = ["BaseSource", "Files", "HttpPolling", "Merged", "MqttTopic", "Webhook", "merged"]
