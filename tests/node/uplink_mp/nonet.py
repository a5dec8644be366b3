"""A transport with no network, for node drivers that feed downlink frames by hand."""


class NoNet:
    acks = True
    name = "none"

    def connect(self):
        return True

    def send(self, frame):
        return False

    def poll(self, timeout_ms):
        return None

    def close(self):
        pass
