"""PostgreSQL fixtures (a throwaway cluster from Debian's binaries)."""
