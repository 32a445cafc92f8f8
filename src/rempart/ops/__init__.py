"""Operations: journal, metrics, dashboard, status page, incident reports."""
