"""The sensor node app: sample -> preprocess -> infer -> decide -> uplink (docs/app.md).

main() reads /app.json (tsnode.config: every key has a safe default) and runs until the
source ends (a replay with loop=false), max_windows, or forever. main.py starts it through
tsnode.supervise, so a crash that escapes the loop is logged and soft-resets the node.

Per frame: read one sample (a replay source paces itself; a sensor is paced here by a
hardware timer, or light sleep when samples are far apart), push it into the model's
Pipeline (the preprocessing training used), and when a window completes copy its int8
codes into the engine's input tensor, run the engine, decide, and report. Inference
allocates nothing: the input/output tensor views, the pipeline's buffers and the decider's
counters are made once here (`stats["infer_alloc"]` measures it on every window).

Uplink: an event frame at once when the decision changes (or an anomaly repeats), a
summary frame every heartbeat, so bandwidth follows what happens. mode "eval" (the demo)
instead sends one frame per window with the true label the replay source knows.
"""

import gc
import sys
import time

# Start-up (config, files, model, uplink, pipeline, source) is tsnode.appstart, imported by
# App() and main() and unloaded again; tsnode.decide, tsnode.report, the engine, the sensors
# and the uplink are imported then too, so `import tsnode.app` alone stays small.


def _unload(name):
    """Forget a start-up-only module so its code leaves the heap (no ROMFS on stock boards:
    imported code lives in the GC heap)."""
    import tsnode

    sys.modules.pop("tsnode." + name, None)
    try:
        delattr(tsnode, name)
    except AttributeError:
        pass


class App:
    def __init__(self, cfg, uplink=False):
        """cfg: a tsnode.config dict. uplink: an Uplink, None (no uplink), or False to
        build it from the node's files (open_uplink)."""
        from tsnode.appstart import setup

        setup(self, cfg, uplink)
        setup = None  # the function keeps its module's code alive: drop it before live_init
        _unload("appstart")
        self._t0 = time.ticks_ms()
        self._ms = 0  # uptime in ms (accumulated, so it never wraps like ticks_ms)
        self._last_hb = 0
        self.seq = 0  # windows since start (eval: the window number)
        self.crashes = 0
        self._crash_times = []
        gc.collect()
        self.stats = {"windows": 0, "frames": 0, "crashes": 0, "infer_alloc": 0,
                      "min_free": gc.mem_free(), "live_init": gc.mem_alloc(), "live_peak": 0,
                      "infer_us": 0}
        self.ota = None  # tsnode.ota.AppUpdates, made when the first update frame comes
        self.ota_result = None  # (update id, step) to report at boot (main() sets it)
        self.on_trial = False  # the active model is an update on trial (main() sets it)
        self.switch = False  # an update is verified: stop and soft-reset to switch to it
        if self.up is not None:
            self.up.on_update = self._on_update

    def _on_update(self, ptype, payload):
        """An authentic update offer or chunk (while a send waits for acks): tsnode.ota."""
        if self.ota is None:
            from tsnode.ota import AppUpdates

            self.ota = AppUpdates(self)
        self.ota.rx.handle(ptype, payload)

    def now(self):
        t = time.ticks_ms()
        self._ms += time.ticks_diff(t, self._t0)
        self._t0 = t
        return self._ms

    def infer(self):
        """Copy the window into the engine's input, run it, decide. Allocates nothing."""
        self.in_view[:] = self.pipe.input
        self.model.run()
        return self.decider.decide(self.pipe.input, self.out_view)

    def step(self):
        """One frame: read, preprocess, (window complete) infer, decide, report. False at
        the end of the source."""
        if self.pacer is not None:
            self.pacer.wait()
        src = self.source
        if not src.read(self.frame):
            return False
        if self.replay and src.new_recording:
            self.pipe.reset()  # never a window across two recordings
        if self.pipe.push(self.frame):
            self._window()
        if self.cfg["heartbeat_s"]:
            t = self.now()
            if t - self._last_hb >= self.cfg["heartbeat_s"] * 1000:
                self._last_hb = t
                gc.collect()  # rare (one heartbeat): measures the live heap, not garbage
                live = gc.mem_alloc()
                if live > self.stats["live_peak"]:
                    self.stats["live_peak"] = live
                self.reporter.summary(t, gc.mem_free())
                if self.cfg["print"]:
                    self._print_summary()
                if self.on_trial:  # a heartbeat on an update's model: keep it
                    from tsnode.ota import confirm

                    confirm(self, t)
                    confirm = None
                    if self.ota is None:  # no transfer running: its code leaves the heap
                        _unload("ota")
        if self.ota is not None and self.ota.step(self.now()):
            return False  # verified: main() resets into the update
        if self.wdt is not None:
            self.wdt.feed()
        return True

    def _window(self):
        st = self.stats
        a = gc.mem_alloc()
        t_us = time.ticks_us()
        self.infer()
        t_us = time.ticks_diff(time.ticks_us(), t_us)
        a = gc.mem_alloc() - a
        if a > st["infer_alloc"]:  # a collection in between makes it negative: ignored
            st["infer_alloc"] = a
        st["infer_us"] = t_us
        free = gc.mem_free()
        if free < st["min_free"]:
            st["min_free"] = free
        d = self.decider
        t = self.now()
        due = d.event_due(t)
        src = self.source
        if self.eval:
            self.reporter.window(t, self.seq, src.recording, src.label, self.pipe.input,
                                 self.out_view, due)
        elif due:
            self.reporter.event(t)
        if self.cfg["print"] and (self.eval or due):
            self._print_window(due)
        self.seq += 1
        st["windows"] = self.seq

    def _print_window(self, due):
        d = self.decider
        line = "app: window %d %s" % (self.seq, self.labels[d.cls])
        if d.kind:
            line += " score %d" % d.score
        else:
            line += " %d%%" % (d.confidence * 100 // 256)
        names = getattr(self.source, "labels", ())
        if self.replay and self.source.label < len(names):
            line += " (true %s)" % names[self.source.label]
        if due:
            line += " EVENT"
        print(line)

    def _print_summary(self):
        print("app: summary", self.seq, "windows, counter", self.reporter.last_counter)

    def _crashed(self, e):
        """Count and report a crash in the loop; re-raise when they come too fast."""
        self.crashes += 1
        self.stats["crashes"] = self.reporter.crashes = self.crashes
        sys.print_exception(e)
        t = self.now()
        window = self.cfg["restart_window_s"] * 1000
        self._crash_times = [c for c in self._crash_times if t - c < window] + [t]
        if len(self._crash_times) > self.cfg["max_restarts"]:
            print("app: %d crashes within %d s; giving up" % (len(self._crash_times),
                                                            self.cfg["restart_window_s"]))
            raise e
        print("app: crash %d, restarting the loop" % self.crashes)
        self.pipe.reset()
        try:
            if self.up is not None:
                from tsnode.report import EV_CRASH

                b = self.up.new_batch(t)
                b.event(EV_CRASH, t, self.crashes)
                self.up.send_batch(flush=True, timeout_ms=self.cfg["ack_wait_ms"])
                self.reporter.frames += 1
        except Exception as e2:  # noqa: BLE001 (the report is best effort)
            print("app: cannot report the crash:", repr(e2))

    def run(self):
        """Run until the source ends or max_windows; returns the stats dict."""
        self.reporter.boot(self.now(), self.boot_crashes, self.ota_result)
        limit = self.cfg["max_windows"]
        while True:
            try:
                while self.step():
                    if limit and self.seq >= limit:
                        break
                break
            except Exception as e:  # noqa: BLE001 (counted, reported, loop restarted)
                self._crashed(e)
        return self.finish()

    def finish(self):
        """Report the end, deliver what is queued (end_flush_s at most), return stats."""
        if self.pacer is not None:
            self.pacer.stop()
        t = self.now()
        if self.cfg["heartbeat_s"] and self.decider.windows:
            gc.collect()  # MEM_FREE is live heap, as on every heartbeat
            self.reporter.summary(t, gc.mem_free())  # the counts since the last heartbeat
        self.reporter.end(t, self.seq)
        left = 0
        if self.up is not None:
            deadline = time.ticks_add(time.ticks_ms(), int(self.cfg["end_flush_s"] * 1000))
            left = self.up.flush(50)
            while left and time.ticks_diff(deadline, time.ticks_ms()) > 0:
                if self.wdt is not None:
                    self.wdt.feed()
                left = self.up.flush(100)
        st = self.stats
        st["frames"] = self.reporter.frames
        st["queued"] = left
        st["last_counter"] = self.reporter.last_counter
        gc.collect()
        st["mem_free"] = gc.mem_free()
        st["mem_alloc"] = gc.mem_alloc()
        if st["mem_alloc"] > st["live_peak"]:
            st["live_peak"] = st["mem_alloc"]
        import json

        print("app: done " + json.dumps(st))
        return st


def main(path="/app.json"):
    """Entry point (main.py, or `import tsnode.app; tsnode.app.main()` at the REPL)."""
    from tsnode import appstart

    files, result, trial = appstart.ota_boot()  # an update's switch or rollback first
    cfg = appstart.load_config(files[2] if files and files[2] else path)
    if files:
        cfg["model"] = files[0]
        cfg["meta"] = files[1] or cfg["meta"]
    missing = appstart.missing_file(cfg)
    appstart = None
    if missing:
        # Not a crash (that would soft-reset the node into a loop): nothing to run yet.
        print("app: %s not found; deploy a model (tinysense demo, docs/app.md) or fix %s"
              % (missing, path))
        _unload("appstart")
        return None
    print("app: model %s, source %s, mode %s" % (cfg["model"], cfg["source"], cfg["mode"]))
    app = App(cfg)
    app.ota_result = result
    app.on_trial = trial
    st = app.run()
    if app.switch:
        print("app: update verified; resetting to switch to it")
        import machine

        machine.soft_reset()
    return st
