"""The embedded (no-server) Celery broker: kombu's filesystem transport, made safe for several
processes.

kombu's filesystem channel creates the message file and then writes it; a worker listing the
folder in between reads an empty file and dies with a JSONDecodeError (seen with beat sending
every second). Here a message is written under a name the reader ignores and renamed into
place, and a rename is atomic: a reader sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        filename = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final_path = os.path.join(self.data_folder_out, filename)
        partial_path = final_path + ".part"  # the reader matches '<queue>.msg' exactly
        try:
            with open(partial_path, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial_path, final_path)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final_path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = AtomicChannel


def register() -> None:
    """Make ``filesystem://`` broker URLs use the atomic transport."""
    TRANSPORT_ALIASES["filesystem"] = "phm.broker:Transport"
