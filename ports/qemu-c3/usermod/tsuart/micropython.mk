# tinysense: Ctrl-C from the UART while code runs (KeyboardInterrupt), as on an esp32 board.
# The link wraps the port's uart_init (FIFOs on) and stdin/poll/delay functions (see tsuart.c); no module is added.
SRC_USERMOD_C += $(USERMOD_DIR)/tsuart.c
LDFLAGS += --wrap=uart_init --wrap=mp_hal_stdin_rx_chr --wrap=mp_hal_stdio_poll --wrap=mp_hal_delay_ms
