"""The Pipes messages between the orchestrator and the remote task.

Besides Pipes' own materialisation and check reports, the task sends custom
messages: ``MSG_MATERIALIZATION`` for a table a selected asset wrote on the
side (the dead-letter queue), ``MSG_FAILURE`` for a run that failed (with
whether the failure was a controlled one: a tripped circuit breaker, missing
landing files). ``task.py`` sends them, ``assets.py`` receives them; both
import them from here, so neither imports the other.
"""

MSG_MATERIALIZATION = "foodops/materialization"
MSG_FAILURE = "foodops/failure"
