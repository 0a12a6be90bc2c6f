package store

// Rows is a query's result set as both backends' drivers give it (database/sql's
// *sql.Rows, clickhouse-go's driver.Rows).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Collect scans every row with scan and closes rows; it stops at the first error. No
// rows give a nil slice.
func Collect[T any](rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
