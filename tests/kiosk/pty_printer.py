"""A serial ticket printer for tests: a socat pty pair and a thread that replies to
DLE EOT status requests on the far end like a real printer."""

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import serial


class SocatPtyPair:
    """Two linked ptys made by socat: the printer end and the host end."""

    def __init__(self, directory: Path) -> None:
        self.printer_path = directory / "printer"
        self.host_path = directory / "host"
        self._log_path = directory / "socat.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        socat = shutil.which("socat")
        if socat is None:
            pytest.skip("socat is not installed (apt-get install socat)")
        command = [
            socat,
            "-d",
            "-d",
            f"pty,raw,echo=0,link={self.printer_path}",
            f"pty,raw,echo=0,link={self.host_path}",
        ]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self._wait_for_links()

    def _wait_for_links(self) -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.printer_path.exists() and self.host_path.exists():
                return
            if self._process is not None and self._process.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        log = self._log_path.read_text(errors="replace")
        pytest.fail(f"socat made no pty links within 5 s. Its log:\n{log}")

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FakeSerialPrinter:
    """Reader of the host pty end that replies to DLE EOT n with replies[n]."""

    def __init__(self, host_path: Path, replies: dict[int, int]) -> None:
        self.replies = replies
        self._port = serial.Serial(str(host_path), timeout=0.02)
        self._received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = bytearray()
        while not self._stop.is_set():
            try:
                chunk = self._port.read(256)
            except serial.SerialException:
                return
            if not chunk:
                continue
            with self._lock:
                self._received += chunk
            pending += chunk
            pending = self._answer_requests(pending)

    def _answer_requests(self, pending: bytearray) -> bytearray:
        while True:
            start = pending.find(b"\x10\x04")
            if start == -1 or len(pending) < start + 3:
                # Keep a trailing DLE that may start a request in the next chunk.
                return pending[-2:]
            request = pending[start + 2]
            del pending[: start + 3]
            if request in self.replies:
                self._port.write(bytes([self.replies[request]]))

    def send_unsolicited(self, data: bytes) -> None:
        self._port.write(data)

    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def wait_for_bytes(self, count: int, timeout_s: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while len(self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._port.close()
