"""Decision engine: keys, windows, distinct counts, familiarity, lists, policy, campaign."""
