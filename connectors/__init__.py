"""Protocol adapters: each turns a source (file, MQTT, OPC UA, Modbus, log file, images)
into plain records pushed to a :class:`connectors.sink.Sink`. Nothing here imports Django."""

from connectors.records import ImageRecord, IngestResult, LogRecord, Quality, Reading, Rejection
from connectors.sink import MemorySink, Sink

__all__ = [
    "ImageRecord",
    "IngestResult",
    "LogRecord",
    "MemorySink",
    "Quality",
    "Reading",
    "Rejection",
    "Sink",
]
