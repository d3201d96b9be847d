"""The release transaction and the host site: one sequence for every target (transaction, rollout), deploy and rollback on hosts, the switch, retirement."""
