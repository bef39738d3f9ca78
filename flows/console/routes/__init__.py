"""The console's pages, one router per page: sign-in, queues, an item, file downloads."""
