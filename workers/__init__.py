"""Workers: processes that poll keyrevoke's task queues and run its workflows and activities."""
