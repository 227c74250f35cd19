"""Image endpoints through docker-py (after Podman's compat test_images.py)."""

import io
import unittest

import docker

from common import Base, IMAGE


class TestImages(Base):
    def test_list(self):
        tags = [t for i in self.client.images.list() for t in i.tags]
        self.assertIn(IMAGE, tags)

    def test_get_and_attrs(self):
        img = self.client.images.get(IMAGE)
        self.assertTrue(img.id.startswith("sha256:"))
        self.assertIn(IMAGE, img.tags)
        self.assertEqual(img.attrs["Os"], "linux")
        self.assertIn("Cmd", img.attrs["Config"])
        self.assertEqual(img.attrs["RootFS"]["Type"], "layers")

    def test_missing(self):
        with self.assertRaises(docker.errors.ImageNotFound):
            self.client.images.get("no-such-image:nope")

    def test_tag_and_remove(self):
        img = self.client.images.get(IMAGE)
        self.assertTrue(img.tag("pytest/tagged", "v1"))
        self.assertIn("pytest/tagged:v1", self.client.images.get(img.id).tags)
        self.client.images.remove("pytest/tagged:v1")
        self.assertNotIn("pytest/tagged:v1", self.client.images.get(img.id).tags)
        self.assertIn(IMAGE, self.client.images.get(img.id).tags)

    def test_remove_in_use(self):
        img = self.client.images.get(IMAGE)
        img.tag("pytest/inuse", "v1")
        c = self.client.containers.create("pytest/inuse:v1", ["true"])
        self.made.append(c.id)
        # The image has another name: removing this one only untags it.
        self.client.images.remove("pytest/inuse:v1")
        # Its last name, used by a container: a conflict without force.
        with self.assertRaises(docker.errors.APIError) as e:
            self.client.images.remove(img.id)
        self.assertEqual(e.exception.status_code, 409)

    def test_history(self):
        hist = self.client.images.get(IMAGE).history()
        self.assertGreaterEqual(len(hist), 1)
        self.assertIn("CreatedBy", hist[0])

    def test_pull_progress(self):
        lines = list(self.api.pull("busybox", tag="latest", stream=True, decode=True))
        self.assertTrue(any("Digest: sha256:" in l.get("status", "") for l in lines), lines)
        self.assertFalse(any("error" in l for l in lines), lines)

    def test_save_load(self):
        img = self.client.images.get(IMAGE)
        img.tag("pytest/saved", "v1")
        data = b"".join(self.client.images.get("pytest/saved:v1").save(named="pytest/saved:v1"))
        self.client.images.remove("pytest/saved:v1")
        loaded = self.client.images.load(io.BytesIO(data))
        self.assertTrue(any("pytest/saved:v1" in i.tags for i in loaded), [i.tags for i in loaded])
        self.client.images.remove("pytest/saved:v1")


if __name__ == "__main__":
    unittest.main()
