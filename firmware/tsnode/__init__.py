"""tsnode: the tinysense node package (engine, uplink, sensors, board seam, agent, app)."""

VERSION = "0.1.0"
