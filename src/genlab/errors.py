"""User-facing errors.

`GenlabError` is raised for anything a user can fix (bad recipe, missing file, wrong checkpoint).
The CLI prints its message as one line and exits with code 2; everything else is a bug and keeps
its traceback.
"""


class GenlabError(Exception):
    """An error the user can fix; the message says what to do."""
