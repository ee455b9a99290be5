"""Policy search: space, trial, reward, trial log, controller, tracking (no Kedro here)."""
