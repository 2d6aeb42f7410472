namespace ReaperProxy.Admission;

/// <summary>What is wrong with a WebSocket request: a short <see cref="Kind"/> (a metric tag) and a sentence for the client and the log.</summary>
internal readonly record struct UpgradeProblem(string Kind, string Text);
