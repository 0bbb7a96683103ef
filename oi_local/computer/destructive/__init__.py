"""The destructive-command check behind computer/forbidden.py: shell code read as the commands it runs
(shell_syntax, shell_commands), the destructive classes of shell commands (shell) and of Python calls
(python), and the places they must not be aimed at (paths)."""
