"""The worker engine in its own low-priority process, driven and watched from the app.

The desktop app's GUI thread must never wait on torch or the database, so the engine runs in a
'spawn' child process. Commands go down one multiprocessing Queue and events come back in
another, both as JSON text (plain data only: nothing but strings is pickled across). In the
child, `WorkerEngine.run()` owns the main thread and a small controller thread applies the
commands and the donation policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from core.cache import ShardCache
from core.collector import freeze_startup_objects
from core.events import WorkerEvent
from core.logs import configure_logging
from core.paths import cache_dir
from core.store import open_store
from core.throttle import DonationPolicy, pause_reason, rest_after_unit

log = logging.getLogger(__name__)

CONTROL_TICK_S = 1.0  # the child re-evaluates the policy at least this often
JOIN_POLL_S = 0.05  # while stopping, drain events this often so the child can flush its queue
KILL_WAIT_S = 5.0  # after a kill, wait this long for the OS to reap the child
FINISHED_REASON = "paused after finishing a unit"
BUSY_STATES = ("downloading", "computing", "uploading")  # a unit is in hand
LOG_PROGRAM = "ganfriends-worker-process"  # name of the child's rotating log file


class WorkerProcessError(RuntimeError):
    """The worker process was used in a way it does not support; the message says how."""


class WorkerProcess:
    """A `WorkerEngine` running in a separate low-priority process.

    Every method returns at once except `stop`, which waits up to `timeout_s` (an app may call
    it from a background thread while its GUI thread keeps polling). Pause, policy and idle time
    given while no child runs are remembered and apply from the next `start`. The app's entry
    module must be import-safe (`if __name__ == "__main__":`), as 'spawn' imports it again.
    """

    def __init__(
        self,
        db_url: str,
        *,
        device: str = "auto",
        threads: int | None = None,
        name: str,
        cache_dir: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self._config: dict[str, Any] = {
            "db_url": db_url,
            "device": device,
            "threads": threads,
            "name": name,
            "cache_dir": None if cache_dir is None else str(cache_dir),
            "log_dir": None if log_dir is None else str(log_dir),
        }
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._commands: multiprocessing.queues.Queue[str] | None = None
        self._events: multiprocessing.queues.Queue[str] | None = None
        self._buffer: deque[WorkerEvent] = deque()
        # Remembered so a (re)started child begins with what the app last said.
        self._policy = DonationPolicy()
        self._idle_s: float | None = None
        self._user_pause: str | None = None
        self._stopping = False
        self._exited = False  # the child said goodbye: its end was orderly
        self._end_reported = False
        self._lock = threading.RLock()  # poll_events and a stop() on another thread share state

    # Lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child and return at once; events follow through `poll_events`."""
        if self.alive:
            raise WorkerProcessError("the worker process is already running; stop() it first")
        self._report_unexpected_end()  # a previous child's death is said before the new start
        self._close_queues()
        self._commands = self._context.Queue()
        self._events = self._context.Queue()
        config = dict(
            self._config,
            policy=self._policy.to_json(),
            idle_s=self._idle_s,
            user_pause=self._user_pause,
        )
        self._process = self._context.Process(
            target=child_main,
            args=(json.dumps(config), self._commands, self._events),
            name="ganfriends-worker",
            daemon=True,  # ended (SIGTERM → lease released) if the app exits without stop()
        )
        self._stopping = self._exited = self._end_reported = False
        self._process.start()
        log.info("worker process %s started", self._process.pid)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the engine (its lease is released at once) and wait; kill it after `timeout_s`."""
        process = self._process
        if process is None:
            return
        if not process.is_alive():  # it ended before it was asked to: say so once
            self._report_unexpected_end()
            self._close_queues()
            return
        self._stopping = True
        self._send({"command": "stop"})
        deadline = time.monotonic() + timeout_s
        while process.is_alive() and time.monotonic() < deadline:
            self._drain()  # a child blocked on a full pipe could never exit
            process.join(JOIN_POLL_S)
        if process.is_alive():
            log.warning(
                "worker process %s ignored stop for %.0f s; killing it", process.pid, timeout_s
            )
            process.kill()
            process.join(KILL_WAIT_S)
            self._buffer.append(
                WorkerEvent(
                    "error",
                    "stopped",
                    f"Stopped: the worker did not stop within {timeout_s:.0f} s and was ended; "
                    "its unit goes back to the queue when its lease expires",
                )
            )
        with self._lock:
            self._drain()
            self._end_reported = True
            self._close_queues()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        return self._process.pid if self.alive and self._process is not None else None

    # Controls ---------------------------------------------------------------------------------
    def pause(self, reason: str) -> None:
        """Abandon the unit between micro-batches and give it back; `reason` is a phrase."""
        self._user_pause = reason
        self._send({"command": "pause", "reason": reason})

    def resume(self) -> None:
        self._user_pause = None
        self._send({"command": "resume"})

    def finish_current_unit(self) -> None:
        """Finish the unit in hand (if any), then pause."""
        self._send({"command": "finish"})

    def set_policy(self, policy: DonationPolicy) -> None:
        self._policy = policy
        self._send({"command": "policy", "policy": policy.to_json()})

    def set_idle_seconds(self, seconds: float | None) -> None:
        """How long the user has been idle (None: this desktop cannot tell), as the app measures."""
        self._idle_s = seconds
        self._send({"command": "idle", "seconds": seconds})

    def poll_events(self, limit: int = 200) -> list[WorkerEvent]:
        """Up to `limit` events that arrived since the last call; never blocks."""
        with self._lock:
            self._drain(limit)
            self._report_unexpected_end()
            count = min(limit, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    # Internals --------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._commands is not None and self.alive:
                self._commands.put(json.dumps(message))

    def _drain(self, limit: int | None = None) -> None:
        """Move what the child sent into the buffer (at most `limit` events)."""
        with self._lock:
            while self._events is not None and (limit is None or len(self._buffer) < limit):
                try:
                    message = json.loads(self._events.get_nowait())
                except queue.Empty:
                    return
                if message.get("exit"):
                    self._exited = True
                else:
                    self._buffer.append(WorkerEvent(**message["event"]))

    def _report_unexpected_end(self) -> None:
        with self._lock:
            process = self._process
            if process is None or process.is_alive() or self._end_reported:
                return
            process.join(0)  # reap it so exitcode is known
            self._drain()  # what it sent before it died comes first
            self._end_reported = True
            if self._exited or self._stopping:
                return
            code = _describe_exit(process.exitcode)
            log.error("worker process %s stopped unexpectedly (%s)", process.pid, code)
            self._buffer.append(
                WorkerEvent(
                    "error",
                    "error",
                    f"The worker process stopped unexpectedly ({code}); press Start to begin again",
                )
            )

    def _close_queues(self) -> None:
        with self._lock:
            for channel in (self._commands, self._events):
                if channel is not None:
                    channel.cancel_join_thread()  # never block on a pipe no one reads any more
                    channel.close()
            self._commands = self._events = None


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code}, killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# The child --------------------------------------------------------------------------------------
class EngineControls(Protocol):
    """What the controller needs of a `WorkerEngine` (tests pass a stand-in)."""

    state: str

    def pause(self, reason: str = ...) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None: ...


class Controller:
    """Applies the app's commands and the donation policy to an engine, from any thread.

    One pause reason wins at a time: the person's own pause first, then the policy's
    (`pause_reason`). The engine is paused or resumed only when that reason changes, so a
    countdown ('snoozed for 2 h 14 min') refreshes the status line as it ticks.
    """

    def __init__(
        self,
        engine: EngineControls,
        policy: DonationPolicy,
        *,
        idle_s: float | None = None,
        user_pause: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._clock = clock
        self._monotonic = monotonic
        self._idle_s = idle_s
        self._idle_at = monotonic()
        self._user_pause = user_pause
        self._finishing = False
        self._applied: str | None = None  # the reason the engine is paused with now
        self._lock = threading.Lock()

    def handle(self, message: dict[str, Any]) -> bool:
        """Apply one command; False once it was `stop`."""
        command = message.get("command")
        with self._lock:
            if command == "stop":
                self._engine.stop()
                return False
            if command == "pause":
                self._user_pause = str(message.get("reason") or "paused by you")
                self._finishing = False
            elif command == "resume":
                self._user_pause = None
                self._finishing = False
            elif command == "finish":
                self._finish()
            elif command == "policy":
                self._set_policy(DonationPolicy.from_json(message["policy"]))
            elif command == "idle":
                self._idle_s = message.get("seconds")
                self._idle_at = self._monotonic()
            else:
                log.warning("ignoring unknown command %r", command)
            self._apply()
        return True

    def tick(self) -> None:
        """Re-evaluate the policy: time passes (snooze, schedule), idle time grows."""
        with self._lock:
            self._apply()

    def after_unit(self, work_s: float) -> float:
        """`WorkerOptions.after_unit`: pause if asked to finish the unit, else rest for the cap."""
        with self._lock:
            if self._finishing:
                self._finishing = False
                self._user_pause = FINISHED_REASON
                self._apply()
                return 0.0
            return rest_after_unit(self._policy, work_s)

    def _finish(self) -> None:
        if self._user_pause is not None:
            return  # already paused by the person: nothing in hand to finish
        if self._applied is not None or self._engine.state not in BUSY_STATES:
            self._user_pause = FINISHED_REASON  # no unit in hand: pausing now is finishing it
        else:
            self._finishing = True

    def _set_policy(self, policy: DonationPolicy) -> None:
        faster = policy.duty_cycle > self._policy.duty_cycle
        self._policy = policy
        if faster and self._applied is None:
            self._engine.resume()  # wakes the engine from a rest the old cap asked for

    def _apply(self) -> None:
        reason = self._user_pause or pause_reason(self._policy, self._now(), self._idle_now())
        if reason is not None and self._finishing:
            # The policy ends the unit in hand before it finishes: the person asked to stop
            # after this unit, so it stays paused when the policy allows computing again.
            self._finishing = False
            self._user_pause = reason = FINISHED_REASON
        if reason == self._applied:
            return
        if reason is None:
            self._engine.resume()
        else:
            self._engine.pause(reason)
        self._applied = reason

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock())

    def _idle_now(self) -> float | None:
        # Idle time keeps growing between the app's reports until it says the user is back.
        if self._idle_s is None:
            return None
        return self._idle_s + (self._monotonic() - self._idle_at)


def child_main(config_json: str, commands: Any, events: Any) -> None:
    """Entry point of the spawned process: set up, run the engine, say goodbye."""
    # torch is imported here, in the child, never in the app that starts it.
    from core.device import DeviceError, lower_priority

    config = json.loads(config_json)
    if config["log_dir"] is not None:
        os.environ["GANFRIENDS_LOG_DIR"] = config["log_dir"]  # read by configure_logging
    configure_logging(LOG_PROGRAM, console=False)
    lower_priority()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal is the app's call

    def send(event: WorkerEvent) -> None:
        events.put(json.dumps({"event": dataclasses.asdict(event)}))

    try:
        _run_engine(config, commands, send)
    except DeviceError as exc:
        send(WorkerEvent("error", "error", f"Cannot compute on {config['device']!r}: {exc}"))
    except BaseException:
        log.exception("the worker process failed")
        raise  # no goodbye: the app reports an unexpected end with the exit code
    events.put(json.dumps({"exit": True}))
    events.close()
    events.join_thread()  # everything sent reaches the app before the process ends


def _run_engine(config: dict[str, Any], commands: Any, send: Callable[[WorkerEvent], None]) -> None:
    import torch

    from core.device import default_threads, register_local_worker, select_device
    from core.worker import WorkerEngine, WorkerOptions

    device = select_device(config["device"])
    root = Path(config["cache_dir"]) if config["cache_dir"] is not None else cache_dir()
    registry = root / "workers"
    register_local_worker(registry)
    threads = config["threads"] or default_threads(registry)
    torch.set_num_threads(threads)

    def after_unit(work_s: float) -> float:
        return controller.after_unit(work_s)  # bound below: the engine needs the hook first

    options = WorkerOptions(
        name=config["name"],
        hostname=socket.gethostname(),
        device=device,
        threads=threads,
        after_unit=after_unit,
    )
    url = config["db_url"]
    engine = WorkerEngine(
        lambda: open_store(url), ShardCache(root / "shards"), options, on_event=send
    )
    controller = Controller(
        engine,
        DonationPolicy.from_json(config["policy"]),
        idle_s=config["idle_s"],
        user_pause=config["user_pause"],
    )
    signal.signal(signal.SIGTERM, lambda *_: engine.stop())
    controller.tick()  # start paused when the app or the policy says so
    threading.Thread(
        target=_control_loop, args=(controller, commands), name="controller", daemon=True
    ).start()
    log.info(
        "worker process %s: %s on %s, %d thread(s)", os.getpid(), options.name, device, threads
    )
    freeze_startup_objects()
    engine.run()


def _control_loop(controller: Controller, commands: Any) -> None:
    parent = multiprocessing.parent_process()
    while True:
        if parent is not None and not parent.is_alive():
            log.warning("the app is gone; stopping")
            controller.handle({"command": "stop"})
            return
        try:
            message = json.loads(commands.get(timeout=CONTROL_TICK_S))
        except queue.Empty:
            controller.tick()
            continue
        except (EOFError, OSError) as exc:  # the app's end of the queue is gone
            log.warning("lost the command queue (%s); stopping", exc)
            controller.handle({"command": "stop"})
            return
        try:
            if not controller.handle(message):
                return
        except (ValueError, KeyError) as exc:  # a malformed command must not end the donation
            log.error("bad command %r: %s", message, exc)
