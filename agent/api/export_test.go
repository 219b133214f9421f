package api

// RenderTask renders a task's Marathon fields, for the tests of package
// api_test.
var RenderTask = renderTask

// RoutePattern names a path's route, for the tests of package api_test.
var RoutePattern = routePattern
