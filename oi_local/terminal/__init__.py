"""The terminal face of the agent: rendering the LMC stream, the confirmation prompt, magic commands, the chat loop.

Nothing here imports rich, litellm or the agent at import time; rich is imported when something is shown.
"""

from oi_local.terminal.chat_loop import chat_loop
from oi_local.terminal.render import render

__all__ = ["chat_loop", "render"]
