"""The broker: Gladia Live sessions for apps that must never hold the Gladia API key."""
