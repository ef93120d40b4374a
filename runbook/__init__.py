"""The rollback domain, pure: the policy schema, the matrices, authority and timing maths."""
