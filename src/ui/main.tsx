import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./app.js";
import { LoginGate } from "./auth/login-gate.js";
import "./styles.css";

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
createRoot(root).render(
  <StrictMode>
    <LoginGate>{(session) => <App session={session} />}</LoginGate>
  </StrictMode>,
);
