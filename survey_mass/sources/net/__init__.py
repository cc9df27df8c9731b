"""What the archive fetchers share on the wire: request cache, retries and limits, transports."""
