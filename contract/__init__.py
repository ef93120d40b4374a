"""What crosses processes: workflow, signal, update and query names and ids, and their input and
output models. The status a query answers is the domain's (`runbook.status`)."""
