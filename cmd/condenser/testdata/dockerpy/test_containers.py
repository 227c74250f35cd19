"""Container endpoints through docker-py (after Podman's compat test_containers.py)."""

import time
import unittest

import docker

from common import Base, IMAGE


class TestContainers(Base):
    def test_run_output(self):
        out = self.client.containers.run(IMAGE, ["sh", "-c", "echo hello; echo oops >&2"], remove=True)
        self.assertEqual(out, b"hello\n")

    def test_run_exit_code(self):
        with self.assertRaises(docker.errors.ContainerError) as e:
            self.client.containers.run(IMAGE, ["sh", "-c", "exit 3"], remove=True)
        self.assertEqual(e.exception.exit_status, 3)

    def test_create_start_wait_logs(self):
        c = self.client.containers.create(IMAGE, ["sh", "-c", "echo one; echo two >&2; exit 4"], name="pytest-cswl",
                                          labels={"suite": "dockerpy"}, environment={"A": "b"})
        self.made.append(c.id)
        self.assertEqual(c.status, "created")
        self.assertEqual(c.name, "pytest-cswl")
        c.start()
        self.assertEqual(c.wait(timeout=30)["StatusCode"], 4)
        self.assertEqual(c.logs(stdout=True, stderr=False), b"one\n")
        self.assertEqual(c.logs(stdout=False, stderr=True), b"two\n")
        c.reload()
        self.assertEqual(c.status, "exited")
        self.assertEqual(c.attrs["State"]["ExitCode"], 4)
        self.assertEqual(c.labels, {"suite": "dockerpy"})
        self.assertIn("A=b", c.attrs["Config"]["Env"])

    def test_list_filters(self):
        a = self.run_detached(["sleep", "60"], labels={"pytest": "list"})
        b = self.client.containers.create(IMAGE, ["true"], labels={"pytest": "list"})
        self.made.append(b.id)
        running = [c.id for c in self.client.containers.list(filters={"label": "pytest=list"})]
        self.assertEqual(running, [a.id])
        every = sorted(c.id for c in self.client.containers.list(all=True, filters={"label": "pytest=list"}))
        self.assertEqual(every, sorted([a.id, b.id]))
        created = [c.id for c in self.client.containers.list(all=True, filters={"status": "created", "label": "pytest=list"})]
        self.assertEqual(created, [b.id])

    def test_stop_kill_restart(self):
        c = self.run_detached(["sleep", "600"])
        c.stop(timeout=1)
        c.reload()
        self.assertEqual(c.status, "exited")
        c.start()
        c.reload()
        self.assertEqual(c.status, "running")
        c.kill(signal="SIGKILL")
        self.assertEqual(c.wait(timeout=30)["StatusCode"], 137)
        c.restart(timeout=1)
        c.reload()
        self.assertEqual(c.status, "running")

    def test_missing(self):
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get("no-such-container")

    def test_remove_running_conflict(self):
        c = self.run_detached(["sleep", "60"])
        with self.assertRaises(docker.errors.APIError) as e:
            c.remove()
        self.assertEqual(e.exception.status_code, 409)
        c.remove(force=True)
        with self.assertRaises(docker.errors.NotFound):
            self.client.containers.get(c.id)

    def test_exec(self):
        c = self.run_detached(["sleep", "60"])
        code, out = c.exec_run(["sh", "-c", "echo in; exit 5"])
        self.assertEqual(code, 5)
        self.assertEqual(out, b"in\n")
        code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        self.assertEqual((code, out, err), (0, b"o\n", b"e\n"))

    def test_rename(self):
        c = self.run_detached(["sleep", "60"], name="pytest-old")
        c.rename("pytest-new")
        c.reload()
        self.assertEqual(c.name, "pytest-new")

    def test_top_and_stats(self):
        c = self.run_detached(["sleep", "60"])
        top = c.top()
        self.assertIn("PID", top["Titles"])
        self.assertTrue(any("sleep" in " ".join(p) for p in top["Processes"]), top)
        st = c.stats(stream=False)
        self.assertIn("memory_stats", st)
        self.assertIn("cpu_stats", st)

    def test_attach_socket(self):
        c = self.client.containers.create(IMAGE, ["cat"], stdin_open=True)
        self.made.append(c.id)
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        c.start()
        sock._sock.sendall(b"ping\n")
        got = b""
        deadline = time.time() + 20
        while b"ping" not in got and time.time() < deadline:
            got += sock._sock.recv(4096)
        self.assertIn(b"ping", got)
        sock._sock.close()
        c.kill()

    def test_prune(self):
        c = self.client.containers.create(IMAGE, ["true"], labels={"pytest": "prune"})
        self.made.append(c.id)
        res = self.client.containers.prune(filters={"label": "pytest=prune"})
        self.assertIn(c.id, res.get("ContainersDeleted") or [])


if __name__ == "__main__":
    unittest.main()
