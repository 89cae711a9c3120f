package tollgate

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation names one bad field of an INVALID_ARGUMENT answer and the
// bound it broke. Tollgate's descriptions name the field and its bound, never
// the value, so they are safe to log.
type FieldViolation struct {
	// Field is the proto path of the field, e.g. `required_scopes[0]`.
	Field string
	// Description says which bound was broken.
	Description string
}

// FieldViolations returns the google.rpc.BadRequest field violations of an
// INVALID_ARGUMENT error, or nil for any other error.
func FieldViolations(err error) []FieldViolation {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	var out []FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return out
}
