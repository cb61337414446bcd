// Package server is fieldsync's HTTP face: the Fiber app and its routes,
// JWT authentication, request limits, live change streams, CORS, metrics,
// and the one table that turns error codes into HTTP statuses. Nothing
// outside this package imports Fiber.
package server
