package schema

import "math"

// earthRadiusM is the mean radius of the Earth in metres.
const earthRadiusM = 6371008.8

// DistanceM returns the great-circle distance in metres between two points
// given in decimal degrees (the haversine formula).
func DistanceM(lat1, lng1, lat2, lng2 float64) float64 {
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat, dLng := rad(lat2-lat1), rad(lng2-lng1)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(rad(lat1))*math.Cos(rad(lat2))*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(h)))
}
