"""System endpoints through docker-py (after Podman's compat test_system.py)."""

import time
import unittest

from common import Base, IMAGE


class TestSystem(Base):
    def test_ping(self):
        self.assertTrue(self.client.ping())

    def test_version(self):
        v = self.client.version()
        self.assertEqual(v["ApiVersion"], "1.50")
        self.assertEqual(v["Os"], "linux")
        self.assertTrue(v["Version"])
        names = [c["Name"] for c in v.get("Components", [])]
        self.assertIn("Engine", names)

    def test_info(self):
        info = self.client.info()
        for key in ("Containers", "ContainersRunning", "Images", "Driver", "OSType", "NCPU", "MemTotal", "ServerVersion"):
            self.assertIn(key, info)
        self.assertEqual(info["OSType"], "linux")
        self.assertGreater(info["NCPU"], 0)
        self.assertGreaterEqual(info["Images"], 1)

    def test_events_since_until(self):
        start = int(time.time()) - 1
        c = self.run_detached(["true"])
        c.wait(timeout=30)
        until = int(time.time()) + 1
        events = list(self.client.events(since=start, until=until, decode=True, filters={"type": "container"}))
        mine = [e for e in events if e.get("Actor", {}).get("ID") == c.id]
        actions = [e["Action"] for e in mine]
        for want in ("create", "start", "die"):
            self.assertIn(want, actions)
        die = [e for e in mine if e["Action"] == "die"][0]
        self.assertEqual(die["Actor"]["Attributes"].get("exitCode"), "0")
        self.assertEqual(die["Type"], "container")
        # API 1.50 clients still read the legacy fields.
        self.assertEqual(die.get("status"), "die")
        self.assertEqual(die.get("id"), c.id)

    def test_df(self):
        df = self.client.df()
        self.assertIn("Images", df)
        self.assertIn("Containers", df)
        self.assertIn("LayersSize", df)
        self.assertTrue(any(IMAGE in (i.get("RepoTags") or []) for i in df["Images"]))


if __name__ == "__main__":
    unittest.main()
