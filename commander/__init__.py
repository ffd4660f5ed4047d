"""The incident commander's command-line interface: ``keyrevoke``."""
