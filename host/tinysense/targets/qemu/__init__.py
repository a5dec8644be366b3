"""Espressif's QEMU as a tinysense target: flash image, command line, start, wait, stop."""

from tinysense.targets.qemu.image import build_flash_image
from tinysense.targets.qemu.machines import QEMU_MACHINES, QemuMachine, find_qemu, qemu_command
from tinysense.targets.qemu.prompt import wait_for_prompt
from tinysense.targets.qemu.runner import QemuNode, start_qemu

__all__ = [
    "QEMU_MACHINES", "QemuMachine", "QemuNode", "build_flash_image", "find_qemu",
    "qemu_command", "start_qemu", "wait_for_prompt",
]
