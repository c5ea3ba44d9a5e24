"""Fault drills, never production behaviour: ``FOODOPS_FAULTS`` injects a failure, a hang or
a doubled write at the Delta write (the one hook: ``lakehouse/delta.py``), so the resilience
tests and operators can rehearse rollback and recovery. Imports nothing of the package."""
