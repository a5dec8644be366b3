# tinysense RV32 QEMU board: only our start-up script is frozen.
freeze("$(BOARD_DIR)", "_boot.py")
