"""Follow-ups: the cadence (and its files in ``cadences/``), touches, the sweeper,
drafting and its filter, send timing and gates, next steps, and the stage effects of silence."""
