"""Shared set-up of the docker-py suite: a client of the daemon under test.

The Go test TestDockerPy starts a Condenser daemon and runs this suite with
DOCKER_HOST pointing at its Docker API socket, as Podman runs its
test/python/docker/compat suite against its own socket.
"""

import os
import unittest

import docker

IMAGE = "busybox:latest"


def client():
    """A high-level client negotiating the API version, as users make one."""
    return docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)


def api():
    """A low-level client (docker.APIClient)."""
    return docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)


class Base(unittest.TestCase):
    """Pulls busybox once; removes what each test made."""

    @classmethod
    def setUpClass(cls):
        cls.client = client()
        cls.api = api()
        cls.client.images.pull("busybox", tag="latest")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.api.close()

    def setUp(self):
        self.made = []

    def tearDown(self):
        for c in self.made:
            try:
                self.client.containers.get(c).remove(force=True)
            except docker.errors.NotFound:
                pass

    def run_detached(self, *args, **kwargs):
        c = self.client.containers.run(IMAGE, *args, detach=True, **kwargs)
        self.made.append(c.id)
        return c
