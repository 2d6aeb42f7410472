using ReaperProxy.EchoBackend;

var app = EchoApp.Build(args);
await app.StartAsync();
Console.WriteLine($"Echo backend listening on {string.Join(", ", app.Urls)} (WebSocket at /echo)");
await app.WaitForShutdownAsync();
