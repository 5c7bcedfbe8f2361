"""What people read, rebuilt from stored rows alone: the markdown report (document), its plots, ranks and
tables, and the terminal summary. Reads rows only through fmbench.resultset; never trains."""
