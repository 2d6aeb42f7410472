namespace ReaperProxy.Configuration;

/// <summary>One problem in a configuration: the key path and what is wrong with it.</summary>
/// <param name="Path">The configuration key path, e.g. <c>Reaper:Policies:chat:PingInterval</c>.</param>
/// <param name="Message">What is wrong, in words an operator can act on.</param>
public sealed record ConfigError(string Path, string Message)
{
    /// <inheritdoc />
    public override string ToString() => string.IsNullOrEmpty(Path) ? Message : $"{Path}: {Message}";
}
