"""Model servers this program starts: ports, logs, the state of running servers, and the runners."""
