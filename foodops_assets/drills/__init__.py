"""Fault drills, never production behaviour: ``FOODOPS_FAULTS`` injects a failure, a hang or
a doubled write at the Delta write (one hook, in the write path every backend shares:
``lakehouse/writers/base.py``), so the resilience tests and operators can rehearse rollback
and recovery. Imports nothing of the package."""
