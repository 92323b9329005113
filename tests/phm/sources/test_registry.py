"""Every connector kind can be built from its JSON config; mistakes name the key."""

from __future__ import annotations

import pytest

from connectors.file_folder import HistorianFolderSource
from connectors.images import WatchedFolderSource
from connectors.logs import LogFileFollower, MemoryOffsetStore
from connectors.modbus import ModbusConnector
from connectors.mqtt import MqttJsonConnector, SparkplugHostConnector
from connectors.opcua import OpcUaConnector
from connectors.sink import MemorySink
from phm.sources.registry import ConfigError, build_connector, validate_config

CONFIGS = {
    "mqtt_json": ({"broker": {"host": "10.0.0.5", "qos": 1}, "mappings": [{"topic": "plant/+/temp", "tag": "{levels[1]}.T"}]}, MqttJsonConnector),
    "sparkplug_b": ({"broker": {}, "group_id": "North", "host_id": "phm", "metric_map": {"North/E1/Temp": "P-101.TEMP"}}, SparkplugHostConnector),
    "opcua": ({"url": "opc.tcp://plc:4840", "nodes": [{"node_id": "ns=2;s=T", "tag": "P-101.TEMP"}]}, OpcUaConnector),
    "modbus": ({"host": "plc", "registers": [{"tag": "P-101.PRESS", "address": 3, "dtype": "float32", "word_order": "little"}]}, ModbusConnector),
    "logfile": ({"path": "/var/log/plc.log", "source": "PLC-1", "format": {"timezone": "Europe/Berlin"}, "miner": {"max_templates": 500}}, LogFileFollower),
    "image_folder": ({"directory": "/srv/inbox", "limits": {"max_bytes": 1000000}}, WatchedFolderSource),
    "file_folder": ({"directory": "/srv/historian", "spec": {"separator": ";", "decimal": ",", "timezone": "Europe/Berlin"}}, HistorianFolderSource),
}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_each_kind_builds_from_json(kind):
    config, cls = CONFIGS[kind]
    # The plant's folders, allowed explicitly (PHM_CONNECTOR_ROOTS): nothing else may be read.
    connector = build_connector(name="c", kind=kind, config=config, sink=MemorySink(), offsets=MemoryOffsetStore(), roots=["/var/log", "/srv"])
    assert isinstance(connector, cls)


def test_mistakes_name_the_key():
    with pytest.raises(ConfigError, match="missing key 'url'"):
        validate_config("opcua", {"nodes": [{"node_id": "ns=2;s=T", "tag": "x"}]})
    with pytest.raises(ConfigError, match=r"nodes\[0\]"):
        validate_config("opcua", {"url": "opc.tcp://x", "nodes": [{"node": "ns=2;s=T", "tag": "x"}]})
    with pytest.raises(ConfigError, match="unknown connector kind"):
        validate_config("profibus", {})
    with pytest.raises(ConfigError, match="broker: unknown keys"):
        validate_config("mqtt_json", {"broker": {"hostname": "x"}, "mappings": [{"topic": "a"}]})


def test_drain3_miner_settings_are_refused_with_a_reason():
    from phm.sources.registry import ConfigError

    with pytest.raises(ConfigError, match="sim_th.*Drain3"):
        build_connector(name="c", kind="logfile", config={"path": "/x.log", "miner": {"sim_th": 0.4}}, sink=MemorySink(), offsets=MemoryOffsetStore(), roots=["/"])


def test_a_miner_state_file_is_refused_in_app_connectors(tmp_path):
    # The app keeps miner state in its database; a state file named in the definition would let
    # an engineer make the server write wherever it may (outside PHM_CONNECTOR_ROOTS too).
    log = tmp_path / "plc.log"
    log.write_text("")
    config = {"path": str(log), "miner": {"state_path": "/etc/phm-miner.json"}}
    with pytest.raises(ConfigError, match="miner.state_path"):
        build_connector(name="c", kind="logfile", config=config, sink=MemorySink(), offsets=MemoryOffsetStore(), roots=[tmp_path])
