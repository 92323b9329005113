"""Run several connectors in threads, restart one that crashes, and expose their status."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from connectors.base import Backoff, Connector, ConnectorStatus

logger = logging.getLogger(__name__)


class Supervisor:
    """Each connector runs ``connector.run(stop)`` in its own daemon thread. ``run`` handles its
    own reconnects; if it still raises, the supervisor records the error and restarts it after a
    backoff, so one broken source never takes the others down.

    ``on_tick`` (if given) is called every ``tick_seconds`` from the supervisor's thread with the
    statuses: the application stores them there, and a :class:`~connectors.spool.SpoolingSink`
    can replay from it.
    """

    def __init__(
        self,
        connectors: Iterable[Connector],
        *,
        tick_seconds: float = 2.0,
        on_tick: Callable[[list[ConnectorStatus]], None] | None = None,
        restart_backoff: Backoff | None = None,
    ):
        self.connectors = list(connectors)
        names = [c.name for c in self.connectors]
        if len(set(names)) != len(names):
            raise ValueError(f"connector names must be unique, got {names}")
        self.tick_seconds = tick_seconds
        self.on_tick = on_tick
        self._restart_backoff = restart_backoff or Backoff(initial=1.0, maximum=60.0)
        self.stop_event = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        for connector in self.connectors:
            thread = threading.Thread(target=self._keep_running, args=(connector,), name=f"connector-{connector.name}", daemon=True)
            self._threads[connector.name] = thread
            thread.start()
        if self.on_tick is not None:
            self._ticker = threading.Thread(target=self._tick_loop, name="connector-supervisor", daemon=True)
            self._ticker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self._threads.values():
            thread.join(timeout)
        for connector in self.connectors:
            if connector.status().state != "failed":
                connector.set_state("stopped", connected=False)
        if self._ticker is not None:
            self._ticker.join(timeout)
            self._tick()  # the final state, after every connector stopped

    def run_forever(self) -> None:
        """Start and block until :meth:`stop` is called (e.g. from a signal handler)."""
        self.start()
        try:
            while not self.stop_event.wait(0.5):
                pass
        finally:
            self.stop()

    def statuses(self) -> list[ConnectorStatus]:
        return [connector.status() for connector in self.connectors]

    def alive(self) -> dict[str, bool]:
        return {name: thread.is_alive() for name, thread in self._threads.items()}

    def _keep_running(self, connector: Connector) -> None:
        backoff = Backoff(self._restart_backoff.initial, self._restart_backoff.maximum, self._restart_backoff.factor)
        while not self.stop_event.is_set():
            try:
                connector.run(self.stop_event)
                backoff.reset()
                if self.stop_event.is_set():
                    return
            except Exception as exc:  # a crash of one connector must not end the others
                logger.exception("connector %s crashed", connector.name)
                connector.note_reconnect(exc)
                connector.set_state("failed", connected=False)
            if backoff.wait(self.stop_event):
                return

    def _tick_loop(self) -> None:
        while not self.stop_event.wait(self.tick_seconds):
            self._tick()

    def _tick(self) -> None:
        try:
            self.on_tick(self.statuses())
        except Exception:  # storing status must never stop the connectors
            logger.exception("supervisor tick callback failed")
