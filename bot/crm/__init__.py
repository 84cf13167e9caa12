"""The service's CRM edges: HubSpot's configuration from the settings and its webhook."""
