"""A picture of the day: a self-contained HTML page per report date, read from the warehouse
(`data`), drawn (`render`, `svg`, `style`) and written beside the report (`write`)."""
