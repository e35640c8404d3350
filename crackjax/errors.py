"""What the user got wrong, as one exception type: a config value, a data folder's layout, a workdir that holds
another model or none, an input that cannot be scored. main.py prints its message in one line and exits with
status 2; any other exception is a fault of the program and keeps its traceback."""


class UserError(ValueError):
  """A problem the user can fix from the message alone (it names the field, file or folder)."""
