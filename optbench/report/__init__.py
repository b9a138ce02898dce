"""Reports: Pareto fronts (pure), rendering (Markdown tables, PNG figures)."""
