package api

// RenderTask renders a task's Marathon fields, for the tests of package
// api_test.
var RenderTask = renderTask
