"""User-facing errors: the CLI prints these as one line, without a traceback."""


class TinysenseError(Exception):
    """An error the user can act on (bad input, missing port, unsupported model...).

    The message says what happened, what was expected and what to do next. The CLI prints
    it as `tinysense: error: <message>` and exits with status 1 (2 is for usage errors); a traceback is for bugs.
    """
