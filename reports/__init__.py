"""Reports, the wallboard's figures, bot analytics and workforce planning (docs/reports.md)."""
